"""The job side: RQ tasks named by string, routing, rendering, sinks and Etlworks actions."""
