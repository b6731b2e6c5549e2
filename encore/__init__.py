"""encore"""
