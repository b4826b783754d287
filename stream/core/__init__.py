"""The parts every room uses: the latest-frame bus, supervised workers, text cleaning, token buckets."""
