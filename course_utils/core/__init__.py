"""The core of the library, used by every notebook: checks, shapes, device, seeding, ``fit``, plots, sliders."""
