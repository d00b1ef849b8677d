"""The synthetic demo dataset in the AudioScope release layout (scenes, rendering, lists)."""
