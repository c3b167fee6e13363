"""Reading and writing media: images, videos, and drawing results on them."""
