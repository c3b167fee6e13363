"""Pure geometry: box conversions and IoU, prior boxes, the variance coder and the matcher."""
