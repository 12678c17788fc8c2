"""The CDK app's stack and constructs: read stack.py first, it shows the architecture."""
