"""recon4d.synthetic"""
