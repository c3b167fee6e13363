"""Grasp datasets: Cornell and Jacquard readers, depth conversion, splits, augmentation and the synthetic generator."""
