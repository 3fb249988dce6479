"""streams/processors"""
