"""Action datasets: readers of the YOWO layout, ACT pickles and UCF101-24 annotation files; clip sampling and augmentation; the synthetic generator."""
