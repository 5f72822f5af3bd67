"""Trainers (teacher, student), evaluation, Hub export and their shared loop helpers."""
