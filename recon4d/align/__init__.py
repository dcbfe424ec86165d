"""recon4d.align"""
