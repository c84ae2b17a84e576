public enum SkbtrailAnalysisVersion { public static let version = "0.1.0" }
