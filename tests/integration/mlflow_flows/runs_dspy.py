"""Seed flow (DSPy autologging with parent/child runs, tags, params and metrics)."""

import dspy
import mlflow

mlflow.set_experiment("skill-creation")
mlflow.dspy.autolog()
dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", cache=False))
program = dspy.Predict("question -> answer")

with mlflow.start_run(run_name="skill_creation_job-1") as parent_run:
    mlflow.set_tag("user_id", "u-1")
    mlflow.set_tag("job_id", "job-1")
    mlflow.set_tag("service", "SkillService")
    mlflow.log_param("temperature", 0.7)
    mlflow.log_param("max_tokens", 4096)
    with mlflow.start_run(run_name="understanding", nested=True):
        mlflow.set_tag("phase", "understanding")
        result = program(question="Capital of France?")
    with mlflow.start_run(run_name="validation", nested=True):
        mlflow.set_tag("phase", "validation")
        mlflow.log_dict({"passed": True}, "validation_report.json")
        mlflow.log_metric("quality_score", 0.85)
        mlflow.log_metric("quality_score", 0.9, step=1)
        mlflow.log_metric("validation_passed", 1)
print(parent_run.info.run_id)
mlflow.flush_trace_async_logging()
