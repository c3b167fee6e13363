"""Turning raw head outputs into detections: decoding, score filtering, NMS."""
