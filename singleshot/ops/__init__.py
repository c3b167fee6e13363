"""Pure geometry: box conversions and the box IoU (torch and NumPy), tube IoU and 3D NMS, prior
boxes and anchor cuboids, the SSD variance coder and the YOLOv2 region coder, the matcher, grasp
rectangles. Imports nothing of the package but :mod:`singleshot.errors` and
:mod:`singleshot.structures`."""
