"""Data on disk and in the pipeline: images, labels, class lists, list files, checks, conversion, VOC."""
