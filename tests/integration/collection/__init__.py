"""The vpsnet.fleet collection built, installed and run from the install, away from
the checkout."""
