"""Development tools run from a checkout (`make reliability`); not part of the installed package."""
