public enum WorkloadPlaceholder {}
