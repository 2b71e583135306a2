"""One round as values (docs/architecture.md): the plan rank 0 makes, the outcome the fused reduction
brings back, the merge of each model's sums, and the one aggregation rule in fixed point."""
