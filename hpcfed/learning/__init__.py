"""What a client does with a subnet: local SGD (one subnet, batched clients, several subnets per
batch), filter-dropout vectors, and evaluation with calibrated normalisation statistics."""
