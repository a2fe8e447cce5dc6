"""agentdistill: run tool-using LangGraph agents, record every model call, distill the runs into small students."""

__version__ = "0.1.0"
