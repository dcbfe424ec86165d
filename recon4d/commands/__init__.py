"""recon4d.commands"""
