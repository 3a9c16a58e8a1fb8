"""The four setup panes (Dataset, Model, Hparams, Device), the deck that holds them, and the form machinery."""
