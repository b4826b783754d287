"""Live input: files, cameras, screens and streams read into a latest-frame bus."""
