"""agents/drivers"""
