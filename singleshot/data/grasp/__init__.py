"""Grasp datasets: Cornell and Jacquard readers, depth conversion, splits, augmentation and the synthetic generator.

Modules: :mod:`.rects` (rectangle <-> grasp conversions and the angle convention), :mod:`.depth`
(reading, repairing and normalising depth), :mod:`.pcd` (Cornell clouds -> depth TIFFs),
:mod:`.cornell`, :mod:`.jacquard` (readers), :mod:`.splits`, :mod:`.augment`, :mod:`.synthetic`,
:mod:`.dataset` (``GraspDataset``), :mod:`.numbers` (the annotation files' number grammar),
:mod:`.check` (the one-pass dataset check).
"""
