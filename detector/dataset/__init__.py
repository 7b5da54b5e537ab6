"""Training data from the site's own footage (issue 12): the YOLO dataset layout, harvesting, feedback."""
