"""recon4d.viz"""
