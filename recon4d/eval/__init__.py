"""recon4d.eval"""
