"""Deployment: segmenting collections of images, and verified SavedModel and TFLite exports."""
