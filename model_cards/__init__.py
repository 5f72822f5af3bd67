"""Jinja templates of the model cards (shipped inside the package as ``vipriors_hub.model_cards``)."""
