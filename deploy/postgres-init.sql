-- The three databases of the stack (run once by the postgres image on first start).
CREATE DATABASE driftline;
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
