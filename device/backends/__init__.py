"""segnet-edge subpackage."""
