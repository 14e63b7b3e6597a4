"""The gateway emulator the other steps are tested against."""
