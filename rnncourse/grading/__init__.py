"""Hidden tests of the section's notebooks. Instructor-side only: nothing here is released to students."""
