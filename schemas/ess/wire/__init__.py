"""Wire contracts shared by every part: one owner each."""
