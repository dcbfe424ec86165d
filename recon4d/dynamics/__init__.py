"""recon4d.dynamics"""
