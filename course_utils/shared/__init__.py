"""Helpers several lectures share: gate layout, torch's recurrent layers, language modelling, metrics, timing."""
