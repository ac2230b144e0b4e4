"""The dynamic inventories (inventories/production) run by ansible-inventory against
local stand-ins for the cloud APIs on 127.0.0.1."""
