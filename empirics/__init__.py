"""VGG-11 on CIFAR-10: a large-learning-rate main path, decayed subpaths, trajectory PCA and loss landscapes."""
