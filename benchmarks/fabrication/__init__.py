"""Fabrication on RAGTruth with the real reader: extraction, feature blocks, ablation."""
