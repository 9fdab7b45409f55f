"""The app SDK: the seed's IoTVideo SDK, in Python."""
