"""Object stores behind one small seam; ``base`` defines it, each other module implements it for one cloud."""
