"""Stream processing side of PLBA: everything that runs inside a Faust worker.

Forecasting and decision cores are plain Python (time is an input); Faust processors decode,
call the core and send.
"""
