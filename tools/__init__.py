"""Developer tools that are not part of the product (in neither the wheel nor the image):
generating the checked-in contract documents (``python -m tools.contracts``)."""
