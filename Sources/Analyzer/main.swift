print("skbtrail")
