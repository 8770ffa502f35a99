"""`make bench`: every benchmark, each printing its figure beside its baseline."""

from bench import deliveries, matching

if __name__ == "__main__":
    matching.main()
    deliveries.main()
