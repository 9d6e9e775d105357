"""A simulated fleet that lands its days into a landing folder, as a real producer would."""
