"""Where shown frames go: MJPEG, RTMP (with the overlay drawn in), clips."""
