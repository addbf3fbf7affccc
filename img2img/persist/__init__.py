"""Persistence: checkpoints (the typed config with the networks, written atomically, older
formats upgraded on load, safetensors exports) and models on the Hugging Face Hub. Publishing a
run to the Hub is training/publish.py (it reads the run's folder)."""
