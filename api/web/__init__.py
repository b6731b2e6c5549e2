"""The web page's static files (a package so that installed copies carry them)."""
