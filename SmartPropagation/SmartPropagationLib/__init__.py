"""Smart Propagation: carry a slice's segmentation to neighbouring slices, stop where the object ends,
and fill the slices between annotated slices. The pure algorithms live in `algorithms`."""
