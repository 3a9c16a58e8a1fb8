"""Data: sources by name, train/val/test splits with standardisation, and batches on the device."""
