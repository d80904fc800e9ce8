"""One backend per cluster kind (README "How it is built": where a new cluster kind goes)."""
